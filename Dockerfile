# Placeholder until the Docker issue: see README.
FROM debian:bookworm-slim
