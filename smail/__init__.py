"""SMail: send one e-mail from the command line through SMTP or Microsoft Graph."""

__version__ = "1.0.0"
