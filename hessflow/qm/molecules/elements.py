"""Element symbols and most-abundant-isotope masses.

Masses (amu) are those of the most abundant isotope, as used by Gaussian (and so by QM9) for
frequencies: NIST "Atomic Weights and Isotopic Compositions", J. S. Coursey et al.,
https://www.nist.gov/pml/atomic-weights-and-isotopic-compositions-relative-atomic-masses (AME2016).
hessflow supports H-Ca, Br and I; other elements are rejected at input.
"""

SYMBOLS = (
    "X", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne",
    "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar", "K", "Ca",
)

ISOTOPE_MASS_AMU = {
    1: 1.00782503223, 2: 4.00260325413, 3: 7.0160034366, 4: 9.012183065, 5: 11.00930536,
    6: 12.0, 7: 14.00307400443, 8: 15.99491461957, 9: 18.99840316273, 10: 19.9924401762,
    11: 22.989769282, 12: 23.985041697, 13: 26.98153853, 14: 27.97692653465, 15: 30.97376199842,
    16: 31.9720711744, 17: 34.968852682, 18: 39.9623831237, 19: 38.9637064864, 20: 39.962590863,
    35: 78.9183376, 53: 126.9044719,
}

_EXTRA = {35: "Br", 53: "I"}
SUPPORTED_Z = frozenset(ISOTOPE_MASS_AMU)
_BY_SYMBOL = {s.lower(): z for z, s in enumerate(SYMBOLS) if z > 0}
_BY_SYMBOL.update({s.lower(): z for z, s in _EXTRA.items()})


def symbol(z: int) -> str:
    """Element symbol of atomic number ``z``; KeyError for an unsupported element."""
    z = int(z)
    if z in _EXTRA:
        return _EXTRA[z]
    if 0 < z < len(SYMBOLS):
        return SYMBOLS[z]
    raise KeyError(f"unsupported element Z={z}")


def atomic_number(sym: str) -> int:
    """Atomic number of a symbol ('C', 'cl', '6'); KeyError for unknown or unsupported elements."""
    s = str(sym).strip()
    if s.isdigit():
        z = int(s)
    else:
        z = _BY_SYMBOL.get(s.lower())
        if z is None:
            raise KeyError(f"unsupported element {s!r}")
    if z not in SUPPORTED_Z:
        raise KeyError(f"unsupported element {s!r}")
    return z


def masses_amu(numbers):
    """Masses (amu) of the most abundant isotope of each atomic number, as a list."""
    return [ISOTOPE_MASS_AMU[int(z)] for z in numbers]
