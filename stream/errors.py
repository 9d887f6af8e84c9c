"""One error root for the service, with a few meaningful subclasses."""


class ServiceError(Exception):
    """Base of every error the service raises on purpose."""


class ConfigurationError(ServiceError):
    """Settings, topics or files that cannot work; the message says how to fix them."""


class BrokerError(ServiceError):
    """A broker could not be installed, started, reached or stopped."""
