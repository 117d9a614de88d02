# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

from ansible_collections.hvkit.hypervisor.plugins.module_utils import hvkit_common
from hvkit import errors


def test_scrub_removes_secrets_and_url_passwords():
    text = "cannot log in as root with s3cret at https://root:s3cret@pve:8006/api"
    assert "s3cret" not in hvkit_common.scrub(text, ["s3cret"])
    assert hvkit_common.scrub("x://user:pw@host/", []) == "x://user:***@host/"


def test_error_kind_names_the_closest_hvkit_error():
    assert hvkit_common.error_kind(errors.AuthenticationError("no")) == "AuthenticationError"
    assert hvkit_common.error_kind(errors.ConnectionError("no")) == "ConnectionError"
    assert hvkit_common.error_kind(errors.InvalidSpec("no")) == "InvalidSpec"
    assert hvkit_common.error_kind(KeyError("x")) == "KeyError"


def test_connection_kwargs_maps_options():
    kwargs = hvkit_common.connection_kwargs(
        dict(
            url="sim://",
            profile=None,
            password="p",
            token=None,
            connect_timeout=5.0,
            backend_options={"state_dir": "/x"},
        )
    )
    assert kwargs == {"url": "sim://", "password": "p", "timeout": 5.0, "state_dir": "/x"}


def test_every_credential_option_is_no_log():
    for key in ("password", "token"):
        assert hvkit_common.CONNECTION_SPEC[key]["no_log"] is True
