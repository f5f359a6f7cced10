"""SMail: send e-mail from the command line through SMTP or Microsoft Graph."""

__version__ = "1.2.0"


def version_line() -> str:
    """`SMail 1.2.0 (Python 3.x.y, OpenSSL 3.y.z, x64)`: what a support request needs."""
    import ssl
    import struct
    import sys

    words = ssl.OPENSSL_VERSION.split()
    openssl = words[1] if len(words) > 1 and words[0] == "OpenSSL" else ssl.OPENSSL_VERSION
    python = ".".join(str(n) for n in sys.version_info[:3])
    machine = "x64" if struct.calcsize("P") == 8 else "x86"
    if sys.platform == "win32":  # what the interpreter SMail.exe is built with still supports
        machine += ", Windows 10 / Server 2016 or later"
    return f"SMail {__version__} (Python {python}, OpenSSL {openssl}, {machine})"
