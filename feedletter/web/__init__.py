"""The small web app (app): subscribe, confirm, one-click unsubscribe, the archive; and the
double opt-in it and the CLI share (optin)."""
