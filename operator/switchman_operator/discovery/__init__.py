"""The discovery stream: route tables and budget state to sidecars over xDS."""
