"""``keras-drn weights list`` and ``keras-drn weights download``: the pretrained files, what
is cached, and fetching them ahead of time for offline use (a Kaggle notebook with the
internet off reads them from a dataset folder named by ``KERAS_DRN_WEIGHTS_DIR``)."""

import argparse
import os

from keras_drn.weights import pretrained, sources


def build_parser(parser=None):
    """The ``weights`` subcommands, added to ``parser`` or to a new stand-alone parser."""
    parser = parser or argparse.ArgumentParser(prog="keras-drn weights")
    actions = parser.add_subparsers(dest="weights_command", required=True,
                                    help="list or download")
    actions.add_parser("list", help="the pretrained files per variant and source, and which "
                       f"are in {pretrained.DIR_ENV} or the cache")
    fetch = actions.add_parser(
        "download", help="download and verify pretrained files into a folder (for offline use: "
        f"point {pretrained.DIR_ENV} at it)")
    fetch.add_argument("variants", nargs="+", metavar="VARIANT",
                       help=f"variants with pretrained weights: {sources.variants_with_weights()}")
    fetch.add_argument("--dir", default=None,
                       help="folder to write to (default: the cache, $KERAS_HOME/keras_drn)")
    fetch.add_argument("--source", default="imagenet",
                       choices=["imagenet", *sources.SOURCES, "all"],
                       help="'imagenet': each variant's default file (falling back to the other "
                       "source), a source name, or 'all' of them")
    return parser


def _size(path):
    return f"{os.path.getsize(path) / 2**20:,.1f} MiB"


def list_files(out=None):
    """Prints one line per file: variant, source, default or not, error, hash, where it is."""
    defaults = {sources.files_for(entry.variant)[0] for entry in sources.FILES}
    print(f"{'variant':<10} {'source':<10} {'top-5 err':<9} {'hash':<20} file; local copy",
          file=out)
    for entry in sources.FILES:
        error = f"{entry.top5_error:.2f}%" if entry.top5_error else "-"
        try:
            local = pretrained.find_local(entry)
        except ValueError as problem:
            where = f"BAD: {problem}"
        else:
            where = f"{local} ({_size(local)})" if local else "not downloaded (size not known here)"
        mark = "*" if entry in defaults else " "
        print(f"{entry.variant:<10} {entry.source + mark:<10} {error:<9} "
              f"{entry.hash_text:<20} {entry.file_name}; {where}", file=out)
    print(f"* weights='imagenet' loads this one. Searched: {pretrained.DIR_ENV}="
          f"{pretrained.weights_dir() or '(unset)'}, then {pretrained.cache_dir()}.", file=out)


def download(variants, directory=None, source="imagenet", out=None):
    """Downloads and verifies the files of ``variants`` into ``directory``; returns the
    paths. Unknown variants are refused before anything is downloaded."""
    unknown = [v for v in variants if not sources.files_for(v)]
    if unknown:
        raise ValueError(f"No pretrained weights for {unknown}; variants with some: "
                         f"{sources.variants_with_weights()}.")
    paths = []
    for variant in variants:
        names = ([f"imagenet:{e.source}" for e in sources.files_for(variant)]
                 if source == "all" else
                 ["imagenet" if source == "imagenet" else f"imagenet:{source}"])
        for weights in names:
            entry, path = pretrained.fetch_first(variant, weights, directory=directory)
            print(f"{variant}: {entry.source} {path} ({_size(path)}, {entry.hash_text} "
                  "verified)", file=out)
            paths.append(path)
    return paths


def run(args):
    """Runs the parsed ``weights`` subcommand; returns the exit status."""
    if args.weights_command == "list":
        list_files()
    else:
        download(args.variants, args.dir, args.source)
    return 0


def command(commands):
    return commands.add_parser(
        "weights", help="list the pretrained files, or download them for offline use")


def arguments(parser):
    build_parser(parser)
