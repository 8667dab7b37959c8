"""Mail providers, one module each: smtp and files send one message per subscriber through the
outbox; listmonk and mailchimp hand the whole issue over as one campaign."""
