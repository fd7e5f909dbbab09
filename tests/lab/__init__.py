"""The real-peer DICOM test lab: generated data (data.py), a test PKI (certs.py), Orthanc and
dcmqrscp kept on loopback (peers.py, loopback_bind.c) and a fault-injecting SCP (fault_scp.py).
The pytest fixtures that use them live in tests/conftest.py."""
