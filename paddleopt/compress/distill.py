"""Knowledge-distillation losses: soft labels, hard-label mixing and feature matching.

Pure functions (``soft_kl_loss``, ``distill_loss``, ``feature_mse``) plus ``Distiller``,
which plugs distillation into a training loop whose only extension point is the loss,
``loss_fn(logits, labels, inputs)`` (``paddleopt.engine.loop.fit``):

- a forward post-hook on the student runs the frozen teacher on the same inputs during
  training forwards, so the teacher sees exactly the student's batch (augmentations
  included); for eval-mode calls ``loss_fn`` runs the teacher on ``inputs`` itself;
- forward hooks on the chosen sublayers record intermediate features of both models;
- when the channel counts of a feature pair differ, a 1x1 conv (or Linear) adapter maps the
  student's feature to the teacher's width. Adapters are NOT attached to the student (they
  would leak into its checkpoints); train them by building the optimizer from
  ``distiller.parameters()`` (student + adapters), e.g. ``fit(..., parameters=...)``.

``remove()`` takes every hook away; the student is then a plain Layer, ready to export.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from paddleopt.utils.errors import UserError
from paddleopt.utils.imports import import_paddle


def soft_kl_loss(student_logits: Any, teacher_logits: Any, temperature: float = 4.0) -> Any:
    """KL(teacher || student) of temperature-softened distributions, scaled by T^2.

    The T^2 factor (Hinton et al., 2015) keeps the gradient magnitude of the soft term
    comparable to the hard-label term when T changes. Averaged over the batch.
    """
    paddle = import_paddle()
    F = paddle.nn.functional
    if temperature <= 0:
        raise UserError(f"temperature must be > 0, got {temperature}.", "use e.g. temperature: 4")
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits / t, axis=-1)
    log_p_t = F.log_softmax(teacher_logits.detach() / t, axis=-1)
    # Written out (instead of F.kl_div) so the reduction is unambiguous: sum over classes,
    # mean over samples; exp(log_p_t) avoids 0 * log 0 NaNs for saturated teachers.
    kl = (paddle.exp(log_p_t) * (log_p_t - log_p_s)).sum(axis=-1).mean()
    return kl * (t * t)


def distill_loss(student_logits: Any, teacher_logits: Any, labels: Any | None = None, *,
                 temperature: float = 4.0, alpha: float = 1.0,
                 label_smoothing: float = 0.0) -> Any:
    """``alpha * soft_kl + (1 - alpha) * cross_entropy(student, labels)``.

    ``alpha=1`` is pure distillation (labels unused); ``alpha<1`` needs ``labels``.
    """
    paddle = import_paddle()
    if not 0 <= alpha <= 1:
        raise UserError(f"alpha must be in [0, 1], got {alpha}.", "use e.g. alpha: 0.7")
    loss = soft_kl_loss(student_logits, teacher_logits, temperature)
    if alpha < 1:
        if labels is None:
            raise UserError("distillation with alpha < 1 mixes in the hard-label loss and "
                            "needs labels.", "pass labels, or set alpha: 1.0")
        ce = paddle.nn.functional.cross_entropy(student_logits, labels.reshape([-1]),
                                                label_smoothing=label_smoothing)
        loss = alpha * loss + (1 - alpha) * ce
    return loss


def feature_mse(student_feat: Any, teacher_feat: Any, adapter: Any | None = None) -> Any:
    """MSE between a (possibly adapted) student feature and the detached teacher feature."""
    paddle = import_paddle()
    s = adapter(student_feat) if adapter is not None else student_feat
    t = teacher_feat.detach()
    if s.shape[1:] != t.shape[1:]:
        raise UserError(f"feature shapes differ: student {list(s.shape)}, teacher "
                        f"{list(t.shape)} (adapters only fix the channel count).",
                        "pick layers whose outputs have the same spatial size.")
    return paddle.nn.functional.mse_loss(s, t)


def _output_tensor(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) else out


class Distiller:
    """Distill ``teacher`` into ``student`` from inside any training loop.

    Args:
        student, teacher: Layers; the teacher is frozen and kept in eval mode.
        temperature, alpha: see ``distill_loss``.
        feature_pairs: ``{student_sublayer: teacher_sublayer}`` (names from
            ``named_sublayers()``) whose outputs are matched with MSE; empty: logits only.
        feature_weight: weight of the summed feature losses.
        sample_inputs: one batch of inputs (list of tensors) used to probe feature shapes and
            build the adapters; required when ``feature_pairs`` is not empty.

    Use ``loss_fn`` as the loop's loss and ``parameters()`` for its optimizer.
    """

    def __init__(self, student: Any, teacher: Any, *, temperature: float = 4.0,
                 alpha: float = 0.9, feature_pairs: Mapping[str, str] | None = None,
                 feature_weight: float = 1.0, label_smoothing: float = 0.0,
                 sample_inputs: Sequence[Any] | None = None) -> None:
        paddle = import_paddle()
        self.student, self.teacher = student, teacher
        self.temperature, self.alpha = temperature, alpha
        self.label_smoothing = label_smoothing
        self.feature_weight = feature_weight
        self.pairs = dict(feature_pairs or {})
        self._teacher_logits: Any = None
        self._s_feats: dict[str, Any] = {}
        self._t_feats: dict[str, Any] = {}
        self._hooks: list[Any] = []

        teacher.eval()
        for p in teacher.parameters():
            p.stop_gradient = True
        distill_loss(paddle.zeros([1, 2]), paddle.zeros([1, 2]), paddle.zeros([1], "int64"),
                     temperature=temperature, alpha=alpha)  # validate T and alpha up front

        s_layers = dict(student.named_sublayers())
        t_layers = dict(teacher.named_sublayers())
        for s_name, t_name in self.pairs.items():  # validate all before hooking anything
            if s_name not in s_layers:
                raise UserError(f"student has no sublayer '{s_name}'.",
                                f"use one of: {', '.join(s_layers)}")
            if t_name not in t_layers:
                raise UserError(f"teacher has no sublayer '{t_name}'.",
                                f"use one of: {', '.join(t_layers)}")
        if self.pairs and sample_inputs is None:
            raise UserError("feature distillation needs sample_inputs (one batch) to find "
                            "the feature shapes.", "pass sample_inputs=[x]")
        for s_name, t_name in self.pairs.items():
            self._hooks.append(s_layers[s_name].register_forward_post_hook(
                self._recorder(self._s_feats, s_name)))
            self._hooks.append(t_layers[t_name].register_forward_post_hook(
                self._recorder(self._t_feats, t_name)))
        self.adapters = paddle.nn.LayerDict()
        if self.pairs:
            try:
                self._build_adapters(list(sample_inputs))
            except Exception:
                self.remove()  # leave the models as they were
                raise
        self._hooks.append(student.register_forward_post_hook(self._run_teacher))

    @staticmethod
    def _recorder(store: dict[str, Any], name: str) -> Any:
        def hook(layer: Any, inputs: Any, output: Any) -> None:
            store[name] = _output_tensor(output)
        return hook

    def _run_teacher(self, layer: Any, inputs: Any, output: Any) -> None:
        self._teacher_logits = None  # never pair a student output with a stale teacher one
        if not layer.training:
            return  # evaluation: loss_fn runs the teacher only if a loss is wanted
        self._teacher_logits = self._teacher_forward(inputs)

    def _teacher_forward(self, inputs: Sequence[Any]) -> Any:
        paddle = import_paddle()
        with paddle.no_grad():
            return _output_tensor(self.teacher(*inputs))

    def _build_adapters(self, sample: list[Any]) -> None:
        paddle = import_paddle()
        s_training = self.student.training
        self.student.eval()
        with paddle.no_grad():
            self.student(*sample)
            self.teacher(*sample)
        if s_training:
            self.student.train()
        for s_name, t_name in self.pairs.items():
            s, t = self._s_feats[s_name], self._t_feats[t_name]
            if len(s.shape) != len(t.shape):
                raise UserError(f"feature '{s_name}' has rank {len(s.shape)} but teacher "
                                f"'{t_name}' has rank {len(t.shape)}.",
                                "pair layers of the same kind (conv with conv).")
            if s.shape[1] != t.shape[1]:
                if len(s.shape) != 4:
                    adapter = paddle.nn.Linear(s.shape[1], t.shape[1])
                else:
                    adapter = paddle.nn.Conv2D(s.shape[1], t.shape[1], 1)
                self.adapters[_key(s_name)] = adapter
        self._s_feats.clear()
        self._t_feats.clear()

    def parameters(self) -> list[Any]:
        """The student's parameters plus the adapters': what the optimizer must update."""
        return list(self.student.parameters()) + list(self.adapters.parameters())

    def feature_loss(self) -> Any:
        """Weighted sum of feature MSEs from the last forward of both models (0 if none)."""
        paddle = import_paddle()
        total = paddle.zeros([])
        for s_name, t_name in self.pairs.items():
            if s_name not in self._s_feats or t_name not in self._t_feats:
                raise RuntimeError("feature_loss() needs a forward of both models first")
            adapter = self.adapters[_key(s_name)] if _key(s_name) in self.adapters else None
            total = total + feature_mse(self._s_feats[s_name], self._t_feats[t_name], adapter)
        return total * self.feature_weight

    def loss(self, student_logits: Any, labels: Any | None = None,
             inputs: Sequence[Any] | None = None) -> Any:
        """Distillation loss for the student forward that just ran.

        Logit distillation (+ hard labels when ``alpha < 1``) plus the weighted feature
        loss. After an eval-mode forward, pass ``inputs`` so the teacher can run on them.
        """
        teacher_logits = self._teacher_logits
        if teacher_logits is None:
            if inputs is None:
                raise RuntimeError("no teacher output for this forward: run the student in "
                                   "training mode, or pass inputs")
            teacher_logits = self._teacher_forward(inputs)
        loss = distill_loss(student_logits, teacher_logits, labels,
                            temperature=self.temperature, alpha=self.alpha,
                            label_smoothing=self.label_smoothing)
        if self.pairs:
            loss = loss + self.feature_loss()
        return loss

    def loss_fn(self, logits: Any, labels: Any, inputs: Sequence[Any] | None = None) -> Any:
        """``paddleopt.engine.loop.LossFn``: ``(logits, labels, inputs) -> loss``."""
        return self.loss(logits, labels, inputs)

    def remove(self) -> None:
        """Remove every hook; the student is a plain Layer again (ready to export)."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self._teacher_logits = None
        self._s_feats.clear()
        self._t_feats.clear()


def _key(name: str) -> str:
    # LayerDict keys become attribute names; '.' is not allowed there.
    return name.replace(".", "__")
