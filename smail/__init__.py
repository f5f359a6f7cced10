"""SMail: send e-mail from the command line through SMTP or Microsoft Graph."""

__version__ = "1.1.0"
