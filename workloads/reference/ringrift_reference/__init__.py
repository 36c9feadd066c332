"""The reference workload: Rift, a small real game for 2–4 players on several boards,
with baselines, a trainable model and the job entry points the agent's templates call."""
