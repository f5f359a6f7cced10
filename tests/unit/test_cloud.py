"""National clouds and the Graph token scope: a private endpoint does not change it."""

from __future__ import annotations

import pytest

from smail.cloud import ENDPOINTS, Cloud, graph_scope


@pytest.mark.parametrize("cloud, endpoint, scope", [
    (Cloud.GLOBAL, None, "https://graph.microsoft.com/.default"),
    (Cloud.GLOBAL, "https://graph-proxy.corp.example", "https://graph.microsoft.com/.default"),
    (Cloud.GLOBAL, "https://127.0.0.1:8443", "https://graph.microsoft.com/.default"),
    (Cloud.USGOV, None, "https://graph.microsoft.us/.default"),
    (Cloud.USGOV_DOD, "https://gateway.example", "https://dod-graph.microsoft.us/.default"),
    (Cloud.GLOBAL, "https://microsoftgraph.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn/.default"),
    (Cloud.CHINA, None, "https://microsoftgraph.chinacloudapi.cn/.default"),
])
def test_graph_scope(cloud, endpoint, scope):
    assert graph_scope(cloud, endpoint) == scope


def test_every_cloud_has_its_endpoints_and_smtp_scope():
    assert set(ENDPOINTS) == set(Cloud)
    assert all(e.authority_host.startswith("https://login.") for e in ENDPOINTS.values())
    assert ENDPOINTS[Cloud.GLOBAL].smtp_scope == "https://outlook.office365.com/.default"
