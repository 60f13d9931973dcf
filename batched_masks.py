"""The fast path of main.py: every mask of a run learned as one batched computation.

main.train_masks learns one mask the way the assignment describes it. Here all masks (seeds x
combos x networks) train together: their losses are independent and Adam is element-wise, so
this is the same computation, only batched. tests/test_reference.py checks that both give the
same masks. Two shortcuts make a step cheap:
- with neuron masks only, the hidden pre-activations Z do not depend on the mask, so the masked
  logits are linear in the mask (StackedActors.mask_to_logits): one small matrix product;
- with input masks, Z is linear in the keep mask over the inputs that the training data ever
  sets (a dozen of the 59), so it too is one small matrix product (input_mask_to_z).
"""

import numpy as np
import torch


class Adam:
    """torch.optim.Adam's update (default betas and eps, no weight decay), written out.

    Constructing torch.optim.Adam imports torch._dynamo, about 1.3 s here: longer than all the
    mask training. tests/test_masks.py checks that this takes the same steps as torch's.
    """

    def __init__(self, parameters, lr, betas=(0.9, 0.999), eps=1e-8):
        self.parameters, self.lr, self.betas, self.eps = list(parameters), lr, betas, eps
        self.first = [torch.zeros_like(p) for p in self.parameters]
        self.second = [torch.zeros_like(p) for p in self.parameters]
        self.steps = 0

    def zero_grad(self):
        for p in self.parameters:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1 ** self.steps)
        correction2_sqrt = (1 - beta2 ** self.steps) ** 0.5
        for p, first, second in zip(self.parameters, self.first, self.second):
            first.lerp_(p.grad, 1 - beta1)
            second.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            p.addcdiv_(first, (second.sqrt() / correction2_sqrt).add_(self.eps), value=-step_size)


def stack_trajectories(trajectories):
    """Training sets as padded tensors: observations (C, N, D), actions (C, N), and weights (C, N)
    that average each set's loss over its own pairs (0 on padding)."""
    size = max(t.get_length() for t in trajectories)
    obs_size = len(trajectories[0].get_state_sequence()[0])
    observations = torch.zeros(len(trajectories), size, obs_size)
    actions = torch.zeros(len(trajectories), size, dtype=torch.long)
    weights = torch.zeros(len(trajectories), size)
    for c, trajectory in enumerate(trajectories):
        n = trajectory.get_length()
        observations[c, :n] = torch.as_tensor(np.array(trajectory.get_state_sequence()))
        actions[c, :n] = torch.tensor(trajectory.get_actions())
        weights[c, :n] = 1.0 / n
    return observations, actions, weights


def input_mask_to_z(actors, observations, input_fill):
    """For input masks: Z = keep[used] @ Q + base, with keep (..., D) the input mask.

    A kept input contributes its value, a dropped one its fill, so Z = fill @ W1 + b1 +
    ((x - fill) * keep) @ W1, linear in keep. Inputs that no training observation sets and whose
    fill is 0 contribute nothing either way: only the `used` ones enter Q.
    observations (C, N, D), input_fill (C, D). Returns used (D,) bool, Q (C, A, U, N * H) and
    base (C, A, 1, H).
    """
    used = observations.ne(0).flatten(0, 1).any(0) | input_fill.ne(0).any(0)
    centred = (observations - input_fill[:, None, :])[..., used]                  # (C, N, U)
    per_input = centred[:, None, :, :, None] * actors.w1[None, :, None, used]     # (C, A, N, U, H)
    q = per_input.transpose(2, 3).flatten(-2)                                      # (C, A, U, N * H)
    base = input_fill[:, None, None, :] @ actors.w1 + actors.b1                    # (C, A, 1, H)
    return used, q, base


def fit_masks(actors, observations, actions, weights, neuron_theta, input_theta, args, set_names,
              discretize, input_fill=None):
    """Adam on a batch of masks; every mask has its own independent loss.

    observations (C, N, D), actions and weights (C, N): one training set per row C, named by
    set_names. neuron_theta (S, C, A, 3, H) and input_theta (S, C, A, 2, D) or None: S seeds,
    A networks; input_fill (C, D) replaces the dropped inputs; discretize maps logits to one-hot
    masks (softmax and the straight-through estimator). Returns the best masks seen (the lowest
    objective per mask), the initial and best cross-entropy (S, C, A), and the loss curves
    (steps, S, C, A).
    """
    parameters = [neuron_theta] + ([input_theta] if input_theta is not None else [])
    optimizer = Adam(parameters, lr=args.mask_learning_rate)
    seeds, combos, networks = neuron_theta.shape[:3]
    examples, num_actions = observations.shape[1], actors.b2.shape[-1]
    if input_theta is None:
        mask_to_logits = actors.mask_to_logits(actors.pre_activations(observations.unsqueeze(1)))
    else:
        used, keep_to_z, z_base = input_mask_to_z(actors, observations, input_fill)

    def masked_logits():
        """Logits (S, C, A, N, O) under the current masks, and the masks' penalty."""
        neuron_mask = discretize(neuron_theta)
        if input_theta is None:
            rows_1_2 = neuron_mask[..., 1:, :].flatten(-2).permute(1, 2, 0, 3)  # (C, A, S, 2H)
            logits = (rows_1_2 @ mask_to_logits).permute(2, 0, 1, 3)             # (S, C, A, N * O)
            return logits.reshape(*logits.shape[:3], -1, num_actions) + actors.b2, 0.0
        keep = discretize(input_theta)[..., 1, :]
        z = keep[..., used].permute(1, 2, 0, 3) @ keep_to_z                     # (C, A, S, N * H)
        z = z.view(combos, networks, seeds, examples, -1).permute(2, 0, 1, 3, 4) + z_base
        return actors.logits(z, neuron_mask), args.input_penalty * keep.sum(-1)

    targets = actions[:, None, :, None].expand(seeds, combos, networks, -1, 1)
    best_objective = torch.full(neuron_theta.shape[:-2], float("inf"))
    best_loss = torch.zeros(neuron_theta.shape[:-2])
    best_neuron = neuron_theta.detach().clone()
    best_input = None if input_theta is None else input_theta.detach().clone()
    curves = []
    for step in range(args.mask_learning_steps):
        logits, penalty = masked_logits()
        nll = -torch.log_softmax(logits, dim=-1).gather(-1, targets).squeeze(-1)  # (S, C, A, N)
        loss = (nll * weights[:, None, :]).sum(-1)                                 # (S, C, A)
        objective = loss + penalty
        with torch.no_grad():  # keep, per mask, the one that produced the lowest objective
            curves.append(loss.clone())
            better = objective < best_objective
            best_objective = torch.where(better, objective, best_objective)
            best_loss = torch.where(better, loss, best_loss)
            best_neuron = torch.where(better[..., None, None], neuron_theta, best_neuron)
            if input_theta is not None:
                best_input = torch.where(better[..., None, None], input_theta, best_input)
        if args.log_every and step % args.log_every == 0:
            log_losses(step, args.mask_learning_steps, loss.detach(), set_names)
        optimizer.zero_grad()
        objective.sum().backward()
        optimizer.step()
    curves = torch.stack(curves)
    best_input_mask = None if best_input is None else discretize(best_input)[..., 1, :]
    return discretize(best_neuron), best_input_mask, curves[0], best_loss, curves


def log_losses(step, steps, loss, set_names):
    """One line: the loss of each training set's masks, averaged over seeds and networks."""
    per_set = loss.mean(dim=(0, 2))
    print(f"step {step:>5}/{steps}  loss  " +
          "  ".join(f"{name} {value:.4f}" for name, value in zip(set_names, per_set.tolist())), flush=True)
