"""Mail providers, one module each, named after the provider and declaring ``PROVIDER``
(:class:`feedletter.plugins.ProviderEntry`): smtp and file send one message per subscriber through
the outbox; listmonk and mailchimp hand the whole issue over as one campaign."""
