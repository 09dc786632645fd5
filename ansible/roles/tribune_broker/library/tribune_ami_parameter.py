#!/usr/bin/python
"""Reads, and optionally moves, the SSM parameter naming the AMI one node boots.

Why not community.aws.ssm_parameter: it cannot set a parameter's data type,
and PutParameter without one makes it `text`. The cluster's parameters are
`aws:ec2:image` (which EC2 validates and Terraform owns; a changed type would
make Terraform replace them), so every write here keeps that type.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tribune_ami_parameter
short_description: Read or move the AMI parameter of a Tribune node
description:
  - Returns the AMI ID an SSM parameter of data type aws:ec2:image holds and,
    when O(value) is given and differs, overwrites it, keeping the data type.
options:
  name:
    description: Name of the parameter (the tribune:ami-parameter tag of the node).
    type: str
    required: true
  value:
    description: AMI ID to store. Omit to only read.
    type: str
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Point the node at a new AMI
  tribune_ami_parameter:
    name: /tribune/prod/eu-west-1a/ami
    value: ami-0123456789abcdef0
"""

RETURN = r"""
previous:
  description: The AMI ID the parameter held before this task.
  returned: always
  type: str
value:
  description: The AMI ID the parameter holds after this task.
  returned: always
  type: str
"""

import re

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing library

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

AMI_ID = re.compile(r"^ami-[0-9a-f]+$")


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(name=dict(type="str", required=True), value=dict(type="str")),
        supports_check_mode=True,
    )
    name, value = module.params["name"], module.params["value"]
    if value is not None and not AMI_ID.match(value):
        module.fail_json(msg=f"{value!r} is not an AMI ID (ami-...)")
    ssm = module.client("ssm")
    try:
        param = ssm.get_parameter(Name=name)["Parameter"]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        module.fail_json_aws(e, msg=f"reading the AMI parameter {name}")
    previous = param["Value"]
    if param.get("DataType", "text") != "aws:ec2:image":
        module.fail_json(msg=f"{name} has data type {param.get('DataType')!r}, not aws:ec2:image: "
                             "it is not a node's AMI parameter of terraform/modules/cluster")
    if value is None or value == previous:
        module.exit_json(changed=False, previous=previous, value=previous)
    if not module.check_mode:
        try:
            ssm.put_parameter(Name=name, Value=value, Type="String", DataType="aws:ec2:image", Overwrite=True)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            module.fail_json_aws(e, msg=f"moving {name} to {value}")
    module.exit_json(changed=True, previous=previous, value=value)


if __name__ == "__main__":
    main()
