"""The PyTorch module an estimator converts to (:func:`lstm_native.interop.to_torch`).

This module imports torch at its top: only :mod:`lstm_native.interop.torch` imports it, inside
the functions that need torch, so that importing lstm_native never imports torch. It is a module
of its own (not a class made inside a function) so that ``torch.save(module)`` and pickle find
the class by name.
"""

from __future__ import annotations

from typing import Any, Optional

import torch


class SequenceModel(torch.nn.Module):
    """A recurrent stack and a linear head, as the estimators compute them.

    ``rnn``: ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` with ``batch_first=True``; ``head``:
    ``torch.nn.Linear`` (dirs*hidden_size -> n_outputs). ``forward(x, lengths=None)``: x (batch,
    time, n_features); ``lengths`` (batch,) right-padded lengths (packed with
    ``pack_padded_sequence``). Returns the head's raw outputs: (batch, n_outputs) from the final
    states (forward direction: each sequence's last step; reverse: after reading back to step 0),
    or with ``return_sequences`` (batch, time, n_outputs) from every step, 0 past each length.
    For a classifier these are the logits: ``softmax(dim=-1)`` gives ``predict_proba``, and
    ``classes`` (a NumPy array, not a parameter) holds the labels of the outputs. With
    ``channels_first`` (an estimator fitted with ``input_layout="nct"``) x is (batch,
    n_features, time), as that estimator's ``predict`` takes it."""

    def __init__(
        self,
        rnn: torch.nn.Module,
        head: torch.nn.Linear,
        return_sequences: bool = False,
        classes: Any = None,
        channels_first: bool = False,
    ) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = head
        self.return_sequences = bool(return_sequences)
        self.classes = classes
        self.channels_first = bool(channels_first)

    def forward(self, x: torch.Tensor, lengths: Optional[Any] = None) -> torch.Tensor:
        if getattr(self, "channels_first", False):  # (modules saved before it have none)
            x = x.transpose(1, 2)
        B, T = x.shape[0], x.shape[1]
        if lengths is None:
            y, state = self.rnn(x)
        else:
            lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                x, lengths, batch_first=True, enforce_sorted=False
            )
            y, state = self.rnn(packed)
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=T)
        if self.return_sequences:
            out = self.head(y)
            if lengths is not None:
                steps = torch.arange(T, device=x.device)
                mask = steps[None, :] < lengths.to(x.device)[:, None]
                out = out * mask[..., None].to(out.dtype)
            return out
        h_n = state[0] if isinstance(state, tuple) else state  # (L * dirs, B, H)
        dirs = 2 if self.rnn.bidirectional else 1
        last = h_n[-dirs:]  # the top layer: (dirs, B, H)
        return self.head(last.transpose(0, 1).reshape(B, -1))


__all__ = ["SequenceModel"]
