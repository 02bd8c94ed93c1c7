"""The in-container measurement harness of lembench.

It reads a request written by the controller, loads one model, measures each experiment and writes
one schema-validated result file per experiment. It never imports the controller (``lembench``).
"""

__version__ = "0.1.0"
