"""Microsoft's national clouds: identity hosts, Graph roots and the token scopes they imply.

Facts from Microsoft's pages "National cloud deployments" (Graph) and "National clouds"
(identity platform).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from smail.redact import Secret


class SignIn(Enum):
    """/O365_AUTH: how SMail signs in to Microsoft."""

    APP = "APP"                            # an application's secret or certificate
    MANAGED_IDENTITY = "MANAGED_IDENTITY"  # the machine's identity (Azure Arc, Azure VM)


class CertStore(Enum):
    """/O365_CERT_STORE: the Windows certificate store ("My") to look the certificate up in."""

    USER = "USER"
    MACHINE = "MACHINE"


@dataclass(frozen=True)
class StoreThumbprint:
    """An /ENCRYPT_TO item naming a certificate of the Windows store by its SHA-1 thumbprint
    (40 upper-case hex digits) instead of a file."""

    hex: str

    def __str__(self) -> str:
        return self.hex


class Cloud(Enum):
    GLOBAL = "GLOBAL"
    USGOV = "USGOV"
    USGOV_DOD = "USGOV_DOD"
    CHINA = "CHINA"


@dataclass(frozen=True)
class Endpoints:
    authority_host: str
    graph_root: str
    # App-only scope for SMTP XOAUTH2 (Exchange Online in that cloud).
    smtp_scope: str


ENDPOINTS: Final[dict[Cloud, Endpoints]] = {
    Cloud.GLOBAL: Endpoints("https://login.microsoftonline.com", "https://graph.microsoft.com",
                            "https://outlook.office365.com/.default"),
    Cloud.USGOV: Endpoints("https://login.microsoftonline.us", "https://graph.microsoft.us",
                           "https://outlook.office365.us/.default"),
    Cloud.USGOV_DOD: Endpoints("https://login.microsoftonline.us", "https://dod-graph.microsoft.us",
                               "https://outlook.office365.us/.default"),
    Cloud.CHINA: Endpoints("https://login.partner.microsoftonline.cn",
                           "https://microsoftgraph.chinacloudapi.cn",
                           "https://partner.outlook.cn/.default"),
}

# Hosts msal knows: anything else is a private endpoint, for which instance discovery
# against login.microsoftonline.com must be turned off.
MICROSOFT_IDENTITY_HOSTS: Final = frozenset({
    "login.microsoftonline.com", "login.microsoft.com", "login.windows.net", "sts.windows.net",
    "login.microsoftonline.us", "login-us.microsoftonline.com", "login.usgovcloudapi.net",
    "login.partner.microsoftonline.cn", "login.chinacloudapi.cn"})


def resource(scope: str) -> str:
    """The resource of a `<resource>/.default` scope (what managed identity endpoints take)."""
    return scope.removesuffix("/.default")


def graph_scope(cloud: Cloud, graph_endpoint: str | None) -> str:
    """The Graph token scope: the cloud's Graph resource, or the endpoint's own when that is
    one of Microsoft's Graph roots. A private endpoint (proxy, gateway, test double) does not
    change it: the identity platform only issues tokens for Microsoft Graph itself."""
    if graph_endpoint:
        host = urlsplit(graph_endpoint).hostname
        for endpoints in ENDPOINTS.values():
            if urlsplit(endpoints.graph_root).hostname == host:
                return f"{endpoints.graph_root}/.default"
    return f"{ENDPOINTS[cloud].graph_root}/.default"


@dataclass(frozen=True, kw_only=True)
class AppCredentials:
    """An Entra ID application (client secret, certificate file or certificate of the Windows
    store), or the machine's managed identity, and where to ask for tokens."""

    tenant_id: str
    app_id: str
    secret: Secret | None = None
    cert_file: Path | None = None
    cert_password: Secret | None = None
    cert_thumbprint: str | None = None       # SHA-1, upper-case hex
    cert_store: CertStore | None = None      # None: the user's store, then the computer's
    sign_in: SignIn = SignIn.APP
    managed_identity: str | None = None      # client id of a user-assigned identity
    authority_host: str
    graph_endpoint: str
    graph_scope: str
    smtp_scope: str
