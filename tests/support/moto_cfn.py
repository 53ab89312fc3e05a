"""moto_server for the deploy tests, with two patches that let a translated SAM stack reach CREATE_COMPLETE.

    python -m tests.support.moto_cfn -H 127.0.0.1 -p PORT

moto 5.2.5, found while testing `lambdafit deploy` (docs/deploy-offline.md has the whole account):
1. A stack created through a change set (what `sam deploy` does) never gets its Outputs: moto's
   `execute_change_set` does not rebuild them, so `sam list stack-outputs` and SAM's managed bucket
   stack fail. Rebuilt here after every change set (as /work/research/aws.md section 4 found).
2. moto's CloudFormation skips `AWS::Lambda::Alias`, so a Permission whose FunctionName is the alias
   (every API event of a function with AutoPublishAlias) gets no FunctionName and moto raises KeyError.
   Such a Permission is skipped here, as moto skips the alias itself.
Nothing else is changed: the REST API, function URL, alias, alarms and CodeDeploy resources are still
created or skipped exactly as moto does.
"""

from __future__ import annotations

import sys
from typing import Any

from moto.awslambda import models as lambda_models
from moto.cloudformation import models as cfn_models

_execute = cfn_models.CloudFormationBackend.execute_change_set


def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> Any:
    result = _execute(self, change_set_name, stack_name)
    for stack in self.stacks.values():
        if stack.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            stack._parse_template()
            stack.output_map = stack._create_output_map()
    return result


_permission = lambda_models.Permission.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def create_permission(cls: Any, name: str, template: dict[str, Any], account: str, region: str, **kwargs: Any) -> Any:
    if "FunctionName" not in template.get("Properties", {}):
        return lambda_models.Permission(region=region)
    return _permission(cls, name, template, account, region, **kwargs)


cfn_models.CloudFormationBackend.execute_change_set = execute_change_set  # type: ignore[method-assign]
lambda_models.Permission.create_from_cloudformation_json = classmethod(create_permission)  # type: ignore[method-assign, assignment]

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
