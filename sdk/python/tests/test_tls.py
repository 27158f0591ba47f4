"""TLS and mTLS: the client verifies agentd with a CA bundle (argument or AGENTD_TLS_CA) and
presents a client certificate (files or AGENTD_TLS_CERT / AGENTD_TLS_KEY)."""

import shutil
import subprocess

import grpc
import pytest

import agentd
from conftest import AgentdProcess

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="needs the openssl CLI (scripts/setup.sh installs it)")

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    _openssl("req", "-x509", *EC, "-days", "2", "-subj", "/CN=agentd sdk test ca",
             "-keyout", "ca.key", "-out", "ca.crt",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    leaves = {"server": "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
              "client": "extendedKeyUsage=clientAuth\n"}
    for name, ext in leaves.items():
        (d / f"{name}.ext").write_text("basicConstraints=CA:FALSE\n" + ext)
        _openssl("req", "-new", *EC, "-subj", f"/CN=agentd-sdk-{name}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-days", "2", "-in", f"{name}.csr", "-CA", "ca.crt",
                 "-CAkey", "ca.key", "-CAcreateserial", "-extfile", f"{name}.ext",
                 "-out", f"{name}.crt", cwd=d)
    return d


@pytest.fixture(scope="module")
def mtls_server(agentd_binary, gated_model, certs, tmp_path_factory):
    creds = grpc.ssl_channel_credentials(
        (certs / "ca.crt").read_bytes(), (certs / "client.key").read_bytes(),
        (certs / "client.crt").read_bytes())
    proc = AgentdProcess(agentd_binary, tmp_path_factory.mktemp("tls"), gated_model.port,
                         extra_args=["--tls-cert", str(certs / "server.crt"), "--tls-key",
                                     str(certs / "server.key"), "--tls-client-ca",
                                     str(certs / "ca.crt")],
                         credentials=creds)
    yield proc
    proc.stop()


def test_mtls_with_files(mtls_server, certs):
    with agentd.Client(mtls_server.address, api_key=mtls_server.key,
                       root_certificates=certs / "ca.crt",
                       certificate_chain=str(certs / "client.crt"),
                       private_key=(certs / "client.key").read_bytes()) as c:
        agent = c.create_agent(name="tls", model="echo")
        assert c.create_session(agent).run("over tls").output_text == "over tls"


def test_mtls_from_environment(mtls_server, certs, monkeypatch):
    monkeypatch.setenv("AGENTD_ADDR", mtls_server.address)
    monkeypatch.setenv("AGENTD_API_KEY", mtls_server.key)
    monkeypatch.setenv("AGENTD_TLS_CA", str(certs / "ca.crt"))
    monkeypatch.setenv("AGENTD_TLS_CERT", str(certs / "client.crt"))
    monkeypatch.setenv("AGENTD_TLS_KEY", str(certs / "client.key"))
    with agentd.Client() as c:
        assert isinstance(c.list_agents(), list)


def test_tls_refused_without_client_cert_or_with_plaintext(mtls_server, certs):
    fast = agentd.RetryPolicy(max_attempts=1)
    with agentd.Client(mtls_server.address, api_key=mtls_server.key, retry=fast, timeout=5,
                       root_certificates=certs / "ca.crt") as c:
        with pytest.raises(agentd.Unavailable):
            c.list_agents()
    with agentd.Client(mtls_server.address, api_key=mtls_server.key, retry=fast, timeout=5,
                       tls=False) as c:
        with pytest.raises(agentd.Unavailable):
            c.list_agents()
