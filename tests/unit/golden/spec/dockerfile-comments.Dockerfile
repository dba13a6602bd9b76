# syntax=docker/dockerfile:1
# A Dockerfile may start with comments.

from debian:bookworm
run <<EOF
apt-get update
not-an-instruction here
EOF
ENV A=1
