"""Training: the paper's step (:mod:`.step`), the run it builds (:mod:`.setup`) under the rules of resuming and
fine-tuning (:mod:`.rules`), the loop (:mod:`.loop`) and what guards it (:mod:`.guards`), validation
(:mod:`.validation`), several processes (:mod:`.distributed`, and :mod:`.torchrun`, which ``--nproc`` starts),
the run folder (:mod:`.runs`) and planning a run to a budget (:mod:`.planning`). ``train(cfg)`` is the whole of
it."""

from .loop import TrainResult, train

__all__ = ["TrainResult", "train"]
