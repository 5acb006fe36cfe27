"""XAS Data Engine: structures -> FEFF10 XANES -> descriptors -> HDF5 shards -> models."""

__version__ = "0.1.0"
