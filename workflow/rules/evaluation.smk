# Rules of evaluation against gold labels.


def evaluation_targets():
    return []
