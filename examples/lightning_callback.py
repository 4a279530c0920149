"""PyTorch Lightning with the tblive callback: a tiny regression, a few seconds on CPU.

    pip install lightning   # brings torch
    python examples/lightning_callback.py

``LightningCallback`` attaches the monitor to the TensorBoardLogger's SummaryWriter (tags as in
the event files) -- other loggers get their ``log_metrics`` wrapped -- and sets
``trainer.should_stop`` once ``monitor.should_stop`` is True.
"""

from __future__ import annotations

import logging
import sys
import tempfile


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import lightning.pytorch as pl
        import torch
        from lightning.pytorch.loggers import TensorBoardLogger

        from tblive.doors.integrations import LightningCallback
    except ImportError as error:
        sys.exit("this example needs lightning (pip install lightning): %s" % error)

    class Regression(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train/loss", loss)
            return loss

        def configure_optimizers(self):  # type: ignore[no-untyped-def]
            return torch.optim.SGD(self.parameters(), lr=0.05)

    torch.manual_seed(0)
    x = torch.randn(512, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(512, 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    logdir = tempfile.mkdtemp(prefix="lightning_")
    logger = TensorBoardLogger(logdir, name="regression")
    callback = LightningCallback(interval=1.0, stop_on="critical")
    trainer = pl.Trainer(max_epochs=5, logger=logger, callbacks=[callback], log_every_n_steps=4,
                         enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False)  # fmt: skip
    trainer.fit(Regression(), loader)
    monitor = callback.monitor
    loss = monitor.stats()["train/loss"]
    print("train/loss: %d points, %s" % (loss.count, loss.format_change("loss")))
    print("final: %s" % (monitor.verdict.summary if monitor.verdict else "no verdict"))
    print("report: %s/tblive_report.json" % logger.log_dir)


if __name__ == "__main__":
    main()
