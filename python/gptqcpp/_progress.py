"""Progress display: a tqdm bar when tqdm is installed, else nothing."""


def tqdm_available():
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


class TqdmProgress:
    """A callback (stage, done, total, note) that draws one tqdm bar per stage."""

    def __init__(self, unit):
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self._unit = unit
        self._bar = None

    def __call__(self, stage, done, total, note):
        if self._bar is None:
            self._bar = self._tqdm(total=total, desc=stage, unit=self._unit)
        self._bar.n = done
        if note:
            self._bar.set_postfix_str(note, refresh=False)
        self._bar.refresh()
        return True

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def make_progress(progress, unit):
    """(callback or None, closer) for a `progress` argument: True (tqdm if installed), False or
    None (nothing), or a callable (stage, done, total, note) -> bool (False cancels)."""
    if callable(progress):
        return progress, lambda: None
    if progress and tqdm_available():
        bar = TqdmProgress(unit)
        return bar, bar.close
    return None, lambda: None
