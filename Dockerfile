# Runs kipvs's whole test suite, kernel tests included, on a host whose kernel has IPVS:
#   docker build -t kipvs-test .
#   docker run --rm --privileged -v /lib/modules:/lib/modules:ro kipvs-test
# With --privileged and a host kernel that has ip_vs, scripts/sandbox.mjs runs the kernel tests
# directly (each test in network namespaces of its own); otherwise it boots User-Mode Linux.
FROM node:20-bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      user-mode-linux iptables ipset ipvsadm kmod iproute2 conntrack nftables linux-libc-dev g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /kipvs
COPY package.json package-lock.json ./
COPY native-shims ./native-shims
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm ci
COPY . .
CMD ["npm", "test"]
