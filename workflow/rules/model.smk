# Rules of the model half: bootstrap_base, build_sft, build_preferences, tokenize, sft, dpo, merge.


def model_targets():
    return []
