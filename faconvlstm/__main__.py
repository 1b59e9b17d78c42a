"""``python -m faconvlstm`` runs the command-line interface."""

from faconvlstm.cli import main

main(prog_name="faconvlstm")
