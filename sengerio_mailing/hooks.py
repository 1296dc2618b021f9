def post_init_hook(env):
    """Backfill Generated Documents with the documents sent before install."""
    env["sengerio.generated.document"]._backfill()
