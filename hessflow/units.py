"""Physical constants and unit conversions (CODATA 2018).

hessflow works in atomic units inside (Hartree, Bohr, amu for masses); convert at the edges only.
"""

BOHR_ANGSTROM = 0.529177210903          # 1 Bohr in Angstrom
ANGSTROM_BOHR = 1.0 / BOHR_ANGSTROM
HARTREE_EV = 27.211386245988
HARTREE_KCALMOL = 627.5094740631
HARTREE_WAVENUMBER = 219474.6313632     # 1 Hartree in cm^-1
AMU_ME = 1822.888486209                 # 1 amu (dalton) in electron masses
AU_DEBYE = 2.541746473                  # 1 e*Bohr in Debye
KB_HARTREE = 3.166811563e-6             # Boltzmann constant in Hartree/K
