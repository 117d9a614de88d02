# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # connection options shared by every module of the collection
    DOCUMENTATION = r"""
options:
  url:
    description:
      - The hypervisor's hvkit URL, for example V(sim://), V(kvm:///system), V(vcenter://admin@vc/DC1),
        V(esxi://root@esx1), V(proxmox://root@pam@pve1:8006).
      - When neither O(url) nor O(profile) is given, hvkit reads E(HVKIT_URL).
    type: str
  profile:
    description:
      - Name of an hvkit profile in C(~/.config/hvkit/config.toml) (or the file E(HVKIT_CONFIG) names).
    type: str
  username:
    description:
      - User name; else the URL's, the profile's, E(HVKIT_<KIND>_USERNAME) or E(HVKIT_USERNAME).
    type: str
  password:
    description:
      - Password; else the profile's, E(HVKIT_<KIND>_PASSWORD) or E(HVKIT_PASSWORD). Never logged.
    type: str
  token:
    description:
      - API token (Proxmox); else the profile's, E(HVKIT_<KIND>_TOKEN) or E(HVKIT_TOKEN). Never logged.
    type: str
  verify_tls:
    description:
      - Verify the hypervisor's TLS certificate. hvkit verifies unless this is V(false).
    type: bool
  ca_file:
    description:
      - A CA bundle for hypervisors with certificates of a private CA.
    type: path
  connect_timeout:
    description:
      - Seconds every network call may take (hvkit's default is 30).
    type: float
  backend_options:
    description:
      - Backend options passed to C(hvkit.connect()), for example C(state_dir) of the sim backend.
    type: dict
    default: {}
requirements:
  - python >= 3.11
  - hvkit
notes:
  - Runs on the host that reaches the hypervisor (usually C(localhost) or a conversion host).
  - Errors are hvkit's own (NotFound, InvalidState, ...), in one line, with secrets replaced by C(***).
"""
