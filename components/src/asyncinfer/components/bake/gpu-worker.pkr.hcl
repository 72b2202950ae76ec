# The asyncinfer GPU worker VM image: Debian 12 (newest cloud kernel) + NVIDIA driver + Docker with the
# NVIDIA container toolkit + the Ops Agent + the worker's container image, pre-pulled; no unattended upgrades. Baking these cut VM-start-to-worker-ready by
# about 7 minutes (3.5 min driver install + 3.5 min image pull at every scale-out).
#
# Built by components/baked_image.py (`packer init bake/ && packer build ... bake/`); the image
# name carries a hash of this file, the scripts, the worker image and the driver version, so a change
# to any of them bakes a new image and an unchanged stack bakes nothing.
# Syntax kept to what Packer 1.6 parses, so `packer validate -syntax-only` works offline here;
# plugins.pkr.hcl (Packer >= 1.7) declares the googlecompute plugin for `packer init`.

variable "project_id" {
  type = string
}

variable "zone" {
  type = string
}

variable "image_name" {
  type        = string
  description = "asyncinfer-gpu-<content hash>"
}

variable "image_family" {
  type    = string
  default = "asyncinfer-gpu"
}

variable "worker_image" {
  type        = string
  description = "The worker's container image, pre-pulled into the VM image."
}

variable "driver_branch" {
  type        = string
  default     = "570"
  description = "NVIDIA driver branch (cuda-drivers-<branch> from NVIDIA's Debian 12 repository)."
}

variable "source_image_family" {
  type    = string
  default = "debian-12"
}

variable "source_image_project" {
  type    = string
  default = "debian-cloud"
}

variable "build_machine_type" {
  type    = string
  default = "n1-standard-4"
}

variable "disk_size_gb" {
  type    = number
  default = 100
}

variable "network" {
  type    = string
  default = "default"
}

variable "subnetwork" {
  type    = string
  default = ""
}

variable "build_service_account" {
  type        = string
  default     = ""
  description = "Service account of the build VM; it needs roles/artifactregistry.reader to pre-pull."
}

variable "use_iap" {
  type        = bool
  default     = true
  description = "No external IP on the build VM: SSH through an IAP TCP tunnel (needs gcloud and the IAP firewall rule)."
}

variable "network_tag" {
  type        = string
  default     = "asyncinfer-bake"
  description = "The tag the IAP SSH firewall rule targets."
}

source "googlecompute" "gpu_worker" {
  project_id              = var.project_id
  zone                    = var.zone
  source_image_family     = var.source_image_family
  source_image_project_id = [var.source_image_project]
  machine_type            = var.build_machine_type
  disk_size               = var.disk_size_gb
  disk_type               = "pd-balanced"
  image_name              = var.image_name
  image_family            = var.image_family
  image_description       = "asyncinfer GPU worker: NVIDIA ${var.driver_branch}, ${var.worker_image}"
  image_labels = {
    asyncinfer-role = "gpu-worker"
    driver-branch   = var.driver_branch
  }
  network               = var.network
  subnetwork            = var.subnetwork
  service_account_email = var.build_service_account
  scopes                = ["https://www.googleapis.com/auth/cloud-platform"]
  ssh_username          = "packer"
  # Org policies often forbid external IPs (constraints/compute.vmExternalIpAccess) and metadata SSH
  # keys (constraints/compute.requireOsLogin): no external IP, an IAP tunnel, OS Login for the key.
  omit_external_ip = var.use_iap
  use_internal_ip  = var.use_iap
  use_iap          = var.use_iap
  use_os_login     = true
  tags             = [var.network_tag]
  metadata = {
    enable-oslogin = "TRUE"
  }
  # The driver is compiled by DKMS against the running kernel; no GPU is needed to build the image,
  # which keeps the bake off scarce GPU quota.
}

build {
  sources = ["source.googlecompute.gpu_worker"]

  # HOME=/root: `sudo -E` would keep the packer user's HOME, and root's Docker credentials (for the
  # pre-pull below) would land in /home/packer/.docker.
  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; sudo -E env HOME=/root {{ .Vars }} bash {{ .Path }}"
    environment_vars = ["DEBIAN_FRONTEND=noninteractive"]
    scripts = [
      "${path.root}/scripts/wait-for-egress.sh",
      "${path.root}/scripts/upgrade-kernel.sh",
    ]
  }

  # Boot into the kernel just installed, so DKMS builds the driver against headers the archive still has.
  provisioner "shell" {
    inline            = ["sudo systemctl reboot"]
    expect_disconnect = true
  }

  provisioner "shell" {
    pause_before    = "30s"
    execute_command = "chmod +x {{ .Path }}; sudo -E env HOME=/root {{ .Vars }} bash {{ .Path }}"
    environment_vars = [
      "DRIVER_BRANCH=${var.driver_branch}",
      "WORKER_IMAGE=${var.worker_image}",
      "DEBIAN_FRONTEND=noninteractive",
    ]
    scripts = [
      "${path.root}/scripts/install-nvidia-driver.sh",
      "${path.root}/scripts/install-container-runtime.sh",
      "${path.root}/scripts/install-ops-agent.sh",
      "${path.root}/scripts/pull-worker-image.sh",
      "${path.root}/scripts/disable-auto-upgrades.sh",
      "${path.root}/scripts/cleanup.sh",
    ]
  }
}
