# The REST gateway: the ipledger project (a wheel built here from this tree) with its pinned
# dependencies, all installed from wheels offline. Run it with IPLEDGER_GATEWAY_ORG (and the state
# directory, IPLEDGER_STATE_DIR, mounted: the organisation's own directory only).
FROM @BASE@
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/ipledger/venv \
 && /opt/ipledger/venv/bin/pip install --no-index --no-deps --no-cache-dir \
        --disable-pip-version-check --quiet /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels
# the PDF reports' Unicode font (Debian's fonts-dejavu-core, from the host: no apt here)
COPY fonts/ /usr/share/fonts/truetype/dejavu/
ENV PATH=/opt/ipledger/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    IPLEDGER_GATEWAY_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["ipledger"]
CMD ["gateway", "serve"]
