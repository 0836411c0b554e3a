"""`python -m bot.cli`: the console script, run from a checkout."""

from bot.cli import main

main()
