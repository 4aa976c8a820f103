"""Molecules as typed graphs (chapter 11), from the ~5,000 NCI molecules RDKit ships.

A molecule is a pair ``(types, bonds)``: ``types`` (n,) long indexes :data:`ATOMS` (element and
formal charge: nitro groups need N+ and O-), ``bonds`` (n, n) long is the symmetric bond-order
matrix of its Kekule form (0 none, 1 single, 2 double, 3 triple; aromatic rings are written with
alternating single and double bonds, so three bond types suffice). Hydrogens are implicit: RDKit
adds as many as each atom's valence leaves room for, which is why a generator only has to keep
each atom's bond-order sum at or below :data:`MAX_VALENCE`.

RDKit (``pip install rdkit``) is imported when a function needs it; without it they raise an
ImportError that says so.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from genai_lib._checks import check_positive

__all__ = ["ATOMS", "MAX_VALENCE", "require_rdkit", "load_nci", "mol_to_graph", "graph_to_smiles", "canonical"]

# (element, formal charge) of each node type
ATOMS: tuple[tuple[str, int], ...] = (
    ("C", 0), ("N", 0), ("O", 0), ("F", 0), ("S", 0), ("Cl", 0), ("Br", 0), ("I", 0), ("P", 0), ("N", 1), ("O", -1),
)  # fmt: skip
# the largest bond-order sum each type takes (S and P in their hypervalent forms, N+ as in nitro)
MAX_VALENCE = torch.tensor([4, 3, 2, 1, 6, 1, 1, 1, 5, 4, 1])
_INDEX = {a: i for i, a in enumerate(ATOMS)}


def require_rdkit() -> Any:
    """Import RDKit with its logs silenced, or raise an ImportError saying how to install it."""
    try:
        from rdkit import Chem, RDLogger
    except ImportError as exc:  # pragma: no cover - exercised only without RDKit
        raise ImportError("this needs RDKit: pip install rdkit==2026.9.1 (see requirements.txt)") from exc
    RDLogger.DisableLog("rdApp.*")
    return Chem


def canonical(smiles: str) -> str | None:
    """RDKit's canonical SMILES, or None if it does not parse and sanitise."""
    chem = require_rdkit()
    mol = chem.MolFromSmiles(smiles)
    return None if mol is None else chem.MolToSmiles(mol)


def mol_to_graph(smiles: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(types, bonds) of one molecule in RDKit's atom order, or None if it has an atom type
    outside :data:`ATOMS`, more than one fragment, or an atom over :data:`MAX_VALENCE`."""
    chem = require_rdkit()
    mol = chem.MolFromSmiles(smiles)
    if mol is None or len(chem.GetMolFrags(mol)) != 1:
        return None
    chem.Kekulize(mol, clearAromaticFlags=True)
    types = []
    for atom in mol.GetAtoms():
        key = (atom.GetSymbol(), atom.GetFormalCharge())
        if key not in _INDEX or atom.GetNumRadicalElectrons():
            return None
        types.append(_INDEX[key])
    n = len(types)
    bonds = torch.zeros(n, n, dtype=torch.long)
    for b in mol.GetBonds():
        order = int(b.GetBondTypeAsDouble())
        if order not in (1, 2, 3):
            return None
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        bonds[i, j] = bonds[j, i] = order
    t = torch.tensor(types, dtype=torch.long)
    if bool((bonds.sum(1) > MAX_VALENCE[t]).any()):
        return None
    return t, bonds


def graph_to_smiles(types: torch.Tensor, bonds: torch.Tensor) -> str | None:
    """The canonical SMILES of a typed graph, or None when RDKit's sanitisation rejects it
    (the test of validity) or it is empty or disconnected."""
    chem = require_rdkit()
    n = int(types.shape[0])
    if n == 0 or bonds.shape != (n, n):
        return None
    mol = chem.RWMol()
    for t in types.tolist():
        symbol, charge = ATOMS[t]
        atom = chem.Atom(symbol)
        atom.SetFormalCharge(charge)
        mol.AddAtom(atom)
    kinds = {1: chem.BondType.SINGLE, 2: chem.BondType.DOUBLE, 3: chem.BondType.TRIPLE}
    for i in range(n):
        for j in range(i + 1, n):
            order = int(bonds[i, j])
            if order:
                if order not in kinds:
                    return None
                mol.AddBond(i, j, kinds[order])
    try:
        m = mol.GetMol()
        chem.SanitizeMol(m)
    except Exception:  # noqa: BLE001 - RDKit raises several kinds; any of them means invalid
        return None
    if len(chem.GetMolFrags(m)) != 1:
        return None
    smiles = chem.MolToSmiles(m)
    return smiles if chem.MolFromSmiles(smiles) is not None else None  # it must also read back


def load_nci(max_atoms: int = 20, *, limit: int | None = None) -> list[str]:
    """Canonical SMILES of the NCI molecules RDKit ships (``RDConfig.RDDataDir/NCI/first_5K.smi``)
    with at most ``max_atoms`` heavy atoms that :func:`mol_to_graph` can represent, deduplicated,
    in file order; ``limit`` reads only the file's first ``limit`` lines (fast mode)."""
    check_positive("max_atoms", max_atoms)
    if limit is not None:
        check_positive("limit", limit)
    require_rdkit()
    from rdkit import Chem, RDConfig

    path = os.path.join(RDConfig.RDDataDir, "NCI", "first_5K.smi")
    out: list[str] = []
    seen: set[str] = set()
    with open(path) as f:
        for k, line in enumerate(f):
            if limit is not None and k >= limit:
                break
            parts = line.split()
            if not parts:
                continue
            mol = Chem.MolFromSmiles(parts[0])
            if mol is None or mol.GetNumAtoms() > max_atoms or mol_to_graph(parts[0]) is None:
                continue
            smi = Chem.MolToSmiles(mol)
            if smi not in seen:
                seen.add(smi)
                out.append(smi)
    return out
