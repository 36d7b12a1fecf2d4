"""Rebuild the dygraph model a checkpoint artifact holds (pruned or not), weights loaded."""
from __future__ import annotations

from typing import Any

from paddleopt.utils.errors import UserError

# Key of a checkpoint manifest's ``model`` spec that marks a structurally pruned network:
# {param name: shape} of every tensor pruning resized. The factory builds the original
# architecture; ``load_pruned_state`` then resizes it to the saved tensors.
PRUNED_SHAPES = "pruned_shapes"


def architecture_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec without the pruning record: what the model factory accepts."""
    return {k: v for k, v in spec.items() if k != PRUNED_SHAPES}


def load_checkpoint_model(artifact: Any) -> Any:
    """Build the network of a ``checkpoint`` artifact, resize it if it was pruned, load its
    weights and switch it to eval mode.

    Paddle's ``set_state_dict`` only warns and skips a tensor whose shape differs, which
    would leave a silently half-initialised model; a mismatch here is an error instead.
    """
    from paddleopt.models.registry import build_model
    from paddleopt.utils.imports import import_paddle

    paddle = import_paddle()
    spec = dict(artifact.manifest.model)
    weights = artifact.file("weights")
    model = build_model(architecture_spec(spec))
    try:
        state = paddle.load(str(weights))
    except Exception as exc:
        raise UserError(f"cannot load weights '{weights}': {exc}",
                        "re-run the stage that produced this checkpoint.") from None
    if spec.get(PRUNED_SHAPES):
        from paddleopt.compress.prune import load_pruned_state

        load_pruned_state(model, state)
    else:
        expected = {k: list(v.shape) for k, v in model.state_dict().items()}
        wrong = [f"{k} {list(v.shape)} (model {expected[k]})" for k, v in state.items()
                 if k in expected and list(v.shape) != expected[k]]
        missing = [k for k in expected if k not in state]
        if wrong or missing:
            detail = "; ".join(wrong[:3]) if wrong else f"missing {', '.join(missing[:5])}"
            raise UserError(f"checkpoint '{artifact.path}' does not fit its model spec "
                            f"{spec.get('arch')}: {detail}.",
                            "re-run the stage that produced it; a pruned model must record "
                            f"model.{PRUNED_SHAPES} in its manifest.")
        model.set_state_dict(state)
    model.eval()
    return model
