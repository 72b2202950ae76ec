# Packer >= 1.7 installs the googlecompute builder from here (`packer init bake/`). Kept apart from
# gpu-worker.pkr.hcl because Packer 1.6, the version Debian ships, rejects this block.
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    googlecompute = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/googlecompute"
    }
  }
}
