# A Bitfusion client image as the webhook's init container expects it: the client under
# /opt/bitfusion, the binary at /opt/bitfusion/bin/bitfusion (see cluster/base/webhook/config.yaml).
# One image per (os, version) pair of the client table. With the client package from VMware
# (vCenter → Bitfusion plug-in → downloads) next to this file:
#   docker build -f cluster/images/bitfusion-client.Dockerfile \
#     --build-arg BASE_IMAGE=ubuntu:20.04 --build-arg CLIENT_PACKAGE=bitfusion-client-ubuntu2004_4.5.0_amd64.deb \
#     -t bitfusion-client:4.5.0-ubuntu20 cluster/images
# (For centos7/centos8 use a CentOS base and an .rpm: replace the apt-get line by `yum install -y`.)
ARG BASE_IMAGE=ubuntu:20.04
FROM ${BASE_IMAGE}
ARG CLIENT_PACKAGE
COPY ${CLIENT_PACKAGE} /tmp/bitfusion-client.deb
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /tmp/bitfusion-client.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/bitfusion-client.deb \
 && mkdir -p /opt/bitfusion/bin \
 && cp "$(command -v bitfusion)" /opt/bitfusion/bin/bitfusion
