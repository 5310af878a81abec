# The ipledger contract as a chaincode service (CCaaS): chaincode/shim/server.py serves
# Chaincode.Connect; the peer dials it (package type ipledger-ccaas). The contract's pinned
# dependencies are installed from the wheels network/channel/package.py downloads for its packages —
# offline, no index. Set CHAINCODE_ID, IPLEDGER_CUSTOMS_MSP and the CHAINCODE_TLS_* files at run time.
FROM @BASE@
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/ipledger/venv \
 && /opt/ipledger/venv/bin/pip install --no-index --no-deps --no-cache-dir \
        --disable-pip-version-check --quiet /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels
COPY src/ /opt/ipledger/src/
# compiled once here: at run time nothing is written (PYTHONDONTWRITEBYTECODE), so each start would
# compile the contract again
RUN /opt/ipledger/venv/bin/python -m compileall -q /opt/ipledger/src
ENV PATH=/opt/ipledger/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/opt/ipledger/src \
    PYTHONDONTWRITEBYTECODE=1 \
    MALLOC_ARENA_MAX=2 \
    CHAINCODE_SERVER_ADDRESS=0.0.0.0:9999 \
    CHAINCODE_CONTRACT=ipledger.chaincode.contract:InwardProcessingContract
EXPOSE 9999
CMD ["python", "-m", "ipledger.chaincode.shim.server"]
