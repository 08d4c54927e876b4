"""The exceptions of gptqcpp: one class per failure kind, the `gptq` command's exit codes.

Every error of the library is a :class:`GPTQError` whose message is the one the CLI prints after
``error:``; ``exit_code`` is the code the CLI would exit with and ``kind`` its name.

=================  ===  ===========  ====================================================
class              code kind         when
=================  ===  ===========  ====================================================
InternalError      1    internal     a bug or an unexpected system failure
UsageError         2    usage        a bad option value, or an output that exists
BadInputError      3    bad_input    a damaged or unsupported model, tokenizer or data file
IOFailure          4    io           a missing file, a full disk, a read-only output
NumericalError     5    numerical    NaN/Inf during the run, a Cholesky failure
Interrupted        6    interrupted  cancelled (Ctrl-C, a callback returned False)
=================  ===  ===========  ====================================================

``UsageError`` and ``BadInputError`` are also ``ValueError``s, ``NumericalError`` an
``ArithmeticError`` and ``Interrupted`` a ``KeyboardInterrupt``.
"""

KINDS = {0: "ok", 1: "internal", 2: "usage", 3: "bad_input", 4: "io", 5: "numerical", 6: "interrupted"}


class GPTQError(RuntimeError):
    """An error of gptq.cpp, with the CLI's message and exit code."""

    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.message = message
        self.exit_code = int(exit_code)
        self.kind = KINDS.get(self.exit_code, "internal")


class InternalError(GPTQError):
    pass


class UsageError(GPTQError, ValueError):
    pass


class BadInputError(GPTQError, ValueError):
    pass


class IOFailure(GPTQError):
    pass


class NumericalError(GPTQError, ArithmeticError):
    pass


class Interrupted(GPTQError, KeyboardInterrupt):
    pass


_BY_CODE = {1: InternalError, 2: UsageError, 3: BadInputError, 4: IOFailure, 5: NumericalError, 6: Interrupted}


def error_class(exit_code):
    """The exception class of an exit code (used by the C++ module)."""
    return _BY_CODE.get(int(exit_code), InternalError)
