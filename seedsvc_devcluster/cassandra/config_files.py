"""logback.xml and cassandra-rackdc.properties for a node's ``conf/`` (pure text, the same for every release)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def render_logback_xml(system_log: Path, levels: Mapping[str, str]) -> str:
    """INFO and above to ``system_log``; WARN and above also to stdout (captured in stdout.log)."""
    loggers = "\n".join(f'  <logger name="{name}" level="{level}"/>' for name, level in sorted(levels.items()))
    return f"""<configuration scan="false">
  <appender name="SYSTEMLOG" class="ch.qos.logback.core.FileAppender">
    <file>{system_log}</file>
    <append>true</append>
    <encoder>
      <pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <filter class="ch.qos.logback.classic.filter.ThresholdFilter">
      <level>WARN</level>
    </filter>
    <encoder>
      <pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
{loggers}
  <root level="INFO">
    <appender-ref ref="SYSTEMLOG"/>
    <appender-ref ref="STDOUT"/>
  </root>
</configuration>
"""


def render_rackdc_properties(dc: str, rack: str) -> str:
    """Read by GossipingPropertyFileSnitch (named by ``-Dcassandra-rackdc.properties``); unused by SimpleSnitch."""
    return f"dc={dc}\nrack={rack}\nprefer_local=true\n"
