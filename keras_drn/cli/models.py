"""``keras-drn models``: the DRN variants and their sizes."""


def command(commands):
    return commands.add_parser("models", help="list the DRN variants and their sizes")


def arguments(parser):
    pass


def run(args):
    from keras_drn.models.drn import VARIANTS
    from keras_drn.models.registry import PARAMETERS, list_models

    print(f"{'name':<10} {'arch':<5} {'block':<11} {'blocks per level':<26} {'parameters':>12}")
    for name in list_models():
        spec = VARIANTS[name]
        depths = ",".join(str(d) for d in spec.depths)
        print(f"{name:<10} {spec.arch:<5} {spec.block:<11} {depths:<26} {PARAMETERS[name]:>12,}")
    return 0
