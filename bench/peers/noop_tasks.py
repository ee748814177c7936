"""Job bodies for the RQ benchmark: a no-op, so only the queue's own overhead is measured."""


def noop():
    return None
