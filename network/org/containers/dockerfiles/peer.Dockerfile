# A Fabric peer: the cached Fabric binary (built with Go from the pinned module, network/org/binaries.py),
# Fabric's default core.yaml (sampleconfig, no key material) for a generated core.yaml to be
# mounted over, and ipledger's external builder (chaincode/builder, standard library only) with a
# virtualenv to run it: chaincode as a service (ipledger-ccaas) and in-peer Python packages both work.
FROM @BASE@
COPY bin/peer /usr/local/bin/peer
COPY config/core.yaml /etc/hyperledger/fabric/core.yaml
COPY builder/ /opt/ipledger/chaincode/builder/
# (modes come from the build context: a chmod here would copy the 64 MB binary into another layer)
RUN python3 -m venv /opt/ipledger/builder-venv \
 && mkdir -p /var/hyperledger/production
ENV FABRIC_CFG_PATH=/etc/hyperledger/fabric \
    IPLEDGER_PYTHON=/opt/ipledger/builder-venv/bin/python
WORKDIR /etc/hyperledger/fabric
CMD ["peer", "node", "start"]
