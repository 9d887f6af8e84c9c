"""Apache Kafka with a SASL_SSL listener: SCRAM users created at format time, a throwaway CA's certificate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trustme
from cryptography.hazmat.primitives import serialization

from stream.errors import BrokerError
from stream.kafka.security import kafka_python_options
from stream.settings import Settings
from stream.tools.brokers import ApacheKafka

ADMIN = ("admin", "admin-secret-1")  # the broker's own inter-broker user


class SecureKafka(ApacheKafka):
    """One node, one SASL_SSL listener (SCRAM-SHA-256 and -512) on 127.0.0.1."""

    name = "kafka-sasl-ssl"

    def __init__(self, users: dict[str, str]) -> None:
        super().__init__()
        self.users = users
        self.ca = trustme.CA(key_type=trustme.KeyType.RSA)  # Kafka's PEM key store reads RSA keys
        self.ca_file = self.workdir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        cert = self.ca.issue_cert("127.0.0.1", "localhost", key_type=trustme.KeyType.RSA)
        self.keystore = self.workdir / "server.pem"
        key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
        pkcs8 = key.private_bytes(  # Kafka's PEM key store reads unencrypted PKCS#8 only
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.keystore.write_bytes(pkcs8 + b"".join(b.bytes() for b in cert.cert_chain_pems))

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def client_env(self, user: str, password: str, mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
        return {
            "SURVEY_ALERTS_BROKER": self.url,
            "SURVEY_ALERTS_SECURITY_PROTOCOL": "SASL_SSL",
            "SURVEY_ALERTS_SASL_MECHANISM": mechanism,
            "SURVEY_ALERTS_SASL_USERNAME": user,
            "SURVEY_ALERTS_SASL_PASSWORD": password,
            "SURVEY_ALERTS_SSL_CAFILE": str(self.ca_file),
        }

    def _properties(self) -> Path:
        path = super()._properties()
        text = path.read_text()
        text = text.replace(
            f"listeners=PLAINTEXT://127.0.0.1:{self.port}", f"listeners=SASL_SSL://127.0.0.1:{self.port}"
        )
        text = text.replace(
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{self.port}",
        )
        text = text.replace(
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,",
        )
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN[0]}" password="{ADMIN[1]}";'
        )
        text += "\n".join(
            [
                "inter.broker.listener.name=SASL_SSL",
                "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
                "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
                f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
                f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={jaas}",
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={self.keystore}",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={self.ca_file}",
                "ssl.client.auth=none",
                "",
            ]
        )
        path.write_text(text)
        return path

    def prepare(self) -> None:
        self.install()
        props = self._properties()
        if (self.workdir / "data" / "meta.properties").exists():
            return
        import subprocess

        from stream.tools.brokers import cluster_id

        scram = []
        for user, password in {ADMIN[0]: ADMIN[1], **self.users}.items():
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                scram += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
        done = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id(),
                "-c",
                str(props),
                *scram,
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def client_options(self) -> dict[str, Any]:
        return kafka_python_options(Settings.from_environ(self.client_env(*ADMIN)))
