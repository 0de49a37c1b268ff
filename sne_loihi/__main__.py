"""``python -m sne_loihi`` (what ``torchrun ... -m sne_loihi`` runs): the ``sne`` command line."""

from sne_loihi.cli import main

main()
