"""Datasets: the one format (``format``), emoji artwork as sticker sets (``emoji_art``), converters of the
public corpora (``convert``) and their command line (``cli``). Import the submodules; this package imports
nothing so that mounting the CLI stays cheap."""
