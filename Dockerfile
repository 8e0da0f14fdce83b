# syntax=docker/dockerfile:1
# Multi-stage image: build with the full toolchain, ship only the runtime
# libraries, libsecchat and the apps.
#   docker build -t secchat .      (or: podman build -t secchat .)
#   docker run --rm -p 7420:7420 -v chatd-data:/var/lib/chatd secchat
FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      build-essential cmake pkg-config libsodium-dev libmsgpack-dev libjwt-dev \
      libjansson-dev libssl-dev libedit-dev check && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSECCHAT_WERROR=ON \
      -DSECCHAT_BUILD_TESTS=OFF -DSECCHAT_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX=/usr \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/out cmake --install /build \
 && for app in chatd chatc; do \
      if [ -x /build/apps/$app/$app ]; then install -D -m 0755 /build/apps/$app/$app /out/usr/bin/$app; fi; \
    done

FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      libsodium23 libmsgpackc2 libjwt0 libjansson4 libssl3 libedit2 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/chatd --create-home chatd \
 && chmod 0700 /var/lib/chatd
COPY --from=build /out/ /
RUN ldconfig
USER chatd
WORKDIR /var/lib/chatd
EXPOSE 7420
# chatd logs to chatd.log beside its binary by default; in the image it logs
# to its data volume instead.
ENTRYPOINT ["chatd", "--log-file", "/var/lib/chatd/chatd.log"]
CMD ["--listen", "0.0.0.0:7420", "--data-dir", "/var/lib/chatd"]
