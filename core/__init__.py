"""What every app shares, and nothing else: errors, the API plumbing, per-process
caches with push invalidation, the encrypted field, the audit actor, admin mixins,
input limits and the outbound policy. It imports no app of the project
(``.importlinter`` holds that contract)."""
