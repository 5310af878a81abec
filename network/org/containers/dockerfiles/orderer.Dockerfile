# A Fabric orderer: the cached Fabric binary and osnadmin, Fabric's default orderer.yaml
# (sampleconfig, no key material) for a generated orderer.yaml to be mounted over.
# FROM scratch when the binaries are static (then nothing else is in the image), else FROM
# the ipledger base image (for Debian's libc): network/org/containers/images.py decides.
FROM @BASE@
COPY bin/orderer bin/osnadmin /usr/local/bin/
COPY config/orderer.yaml /etc/hyperledger/fabric/orderer.yaml
ENV FABRIC_CFG_PATH=/etc/hyperledger/fabric
WORKDIR /etc/hyperledger/fabric
CMD ["/usr/local/bin/orderer"]
