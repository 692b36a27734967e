"""The `paper` format as a Jinja chat template, written into an export so that it is served with the prompts it
was trained on.

`tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True)`, vLLM's and TGI's chat
endpoints build prompts from the tokenizer's `chat_template`. `PAPER_CHAT_TEMPLATE` writes exactly what
`render_text` writes (render.py) from OpenAI-style input:
- `messages`: `system` / `user` / `tool` turns with `content`; `assistant` turns with `content` and
  `tool_calls`, each `{"type": "function", "function": {"name", "arguments"}}` with `arguments` an object
  (transformers' convention; vLLM's server decodes the OpenAI wire format's JSON string before the template);
- `tools`: JSON-schema function definitions, `{"type": "function", "function": {"name", "description",
  "parameters"}}`, as transformers passes them (a bare `{"name", ...}` works too);
- `add_generation_prompt`: ends the text with `Assistant:`, where training's targets start.

Values are written as `python_literal` writes them. A string is `([s] | string)[1:-1]`: Jinja2 (transformers,
vLLM) prints a list with Python's `repr` of its items, so that is `repr(s)`, quotes and escapes included.
MiniJinja (TGI) mimics it, except for floats it writes without an exponent (`0.00001` for `1e-05`) and
non-ASCII characters Python escapes (`\\u200b`).
"""

from __future__ import annotations

from typing import Any

PAPER_CHAT_TEMPLATE = r'''
{#- tlkit's `paper` format (tlkit/data/render.py): keep the two in step. -#}
{%- macro py(value) -%}
    {%- if value is none -%}
        {{- 'None' -}}
    {%- elif value is boolean -%}
        {{- 'True' if value else 'False' -}}
    {%- elif value is string -%}
        {#- A list prints its items with Python's repr: its quoting and escapes, whatever the string holds. -#}
        {{- ([value] | string)[1:-1] -}}
    {%- elif value is mapping -%}
        {{- '{' -}}
        {%- for k, v in value.items() -%}
            {{- (', ' if not loop.first else '') + py(k) + ': ' + py(v) -}}
        {%- endfor -%}
        {{- '}' -}}
    {%- elif value is iterable -%}
        {{- '[' -}}
        {%- for v in value -%}
            {{- (', ' if not loop.first else '') + py(v) -}}
        {%- endfor -%}
        {{- ']' -}}
    {%- else -%}
        {{- value -}}
    {%- endif -%}
{%- endmacro -%}

{%- macro py_type(schema) -%}
    {%- set kind = schema['type'] if schema is mapping and 'type' in schema else none -%}
    {%- set names = {'string': 'str', 'integer': 'int', 'number': 'float', 'boolean': 'bool', 'array': 'list',
                     'object': 'dict'} -%}
    {%- set name = names[kind] if kind is string and kind in names else 'Any' -%}
    {%- set items = py_type(schema['items'] if 'items' in schema else none) if name == 'list' else 'Any' -%}
    {{- 'list[' + items + ']' if items != 'Any' else name -}}
{%- endmacro -%}

{#- Google-style `name (type): description` lines, and those of nested objects below their parameter. -#}
{%- macro arg_lines(properties, required, depth) -%}
    {%- for name, schema in properties.items() -%}
        {%- set schema = schema if schema is mapping else {} -%}
        {%- set text = (schema['description'] if 'description' in schema else '') | string -%}
        {%- set text = text.split() | join(' ') -%}
        {%- set enum = schema['enum'] if 'enum' in schema else none -%}
        {%- if enum is not none and enum is iterable and enum is not string and enum is not mapping -%}
            {%- set ns = namespace(values=[]) -%}
            {%- for v in enum -%}
                {%- set ns.values = ns.values + [py(v)] -%}
            {%- endfor -%}
            {%- set text = text + ' One of: ' + ns.values | join(', ') + '.' -%}
        {%- endif -%}
        {#- Top-level optional arguments show their default in the signature. -#}
        {%- if 'default' in schema and (depth > 0 or name in required) -%}
            {%- set text = text + ' Default: ' + py(schema['default']) + '.' -%}
        {%- endif -%}
        {%- set kind = py_type(schema) + (', optional' if depth > 0 and name not in required else '') -%}
        {{- '\n' + '    ' * (depth + 2) + name + ' (' + kind + '):' + (' ' + text | trim if text | trim else '') -}}
        {%- set inner = schema['items'] if schema['type'] == 'array' and 'items' in schema else schema -%}
        {%- if inner is mapping and inner['properties'] is mapping -%}
            {{- arg_lines(inner['properties'], inner['required'] or [], depth + 1) -}}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro -%}

{#- `def name(a: str, b: int = 3, c: str = None):` and a docstring with the arguments. -#}
{%- macro signature(f) -%}
    {%- set parameters = f['parameters'] if f['parameters'] is mapping else {} -%}
    {%- set properties = parameters['properties'] if parameters['properties'] is mapping else {} -%}
    {%- set ns = namespace(required=[], args=[]) -%}
    {%- for name in parameters['required'] or [] -%}
        {%- if name in properties -%}
            {%- set ns.required = ns.required + [name] -%}
            {%- set ns.args = ns.args + [name + ': ' + py_type(properties[name])] -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for name, schema in properties.items() -%}
        {%- if name not in ns.required -%}
            {%- set default = schema['default'] if schema is mapping and 'default' in schema else none -%}
            {%- set ns.args = ns.args + [name + ': ' + py_type(schema) + ' = ' + py(default)] -%}
        {%- endif -%}
    {%- endfor -%}
    {{- 'def ' + f['name'] + '(' + ns.args | join(', ') + '):\n    """' -}}
    {{- (f['description'] or '') | trim or f['name'] -}}
    {%- if properties -%}
        {{- '\n\n    Args:' + arg_lines(properties, ns.required, 0) -}}
    {%- endif -%}
    {{- '\n    """' -}}
{%- endmacro -%}

{#- `name(arg='v')`: the calls of one assistant turn, one per line. -#}
{%- macro calls(tool_calls) -%}
    {%- for call in tool_calls -%}
        {%- set call = call['function'] if call['function'] is defined else call -%}
        {%- if call['arguments'] is string -%}
            {{- raise_exception('tool call arguments must be an object, not a JSON string: decode them first') -}}
        {%- endif -%}
        {{- ('\n' if not loop.first else '') + call['name'] + '(' -}}
        {%- for key, value in (call['arguments'] or {}).items() -%}
            {{- (', ' if not loop.first else '') + key + '=' + py(value) -}}
        {%- endfor -%}
        {{- ')' -}}
    {%- endfor -%}
{%- endmacro -%}

{%- set markers = {'system': 'System:', 'user': 'User:', 'assistant': 'Assistant:', 'tool': 'Output:'} -%}
{%- if messages and messages[0]['role'] == 'system' -%}
    {%- set system = messages[0]['content'] or '' -%}
    {%- set turns = messages[1:] -%}
{%- else -%}
    {%- set system = 'You are a helpful assistant that can call tools.' -%}
    {%- set turns = messages -%}
{%- endif -%}
{{- 'System: ' + system -}}
{%- if tools -%}
    {{- '\nYou can call the following tools:' -}}
    {%- for tool in tools -%}
        {{- ('\n' if loop.first else '\n\n') + signature(tool['function'] if tool['function'] is defined else tool) -}}
    {%- endfor -%}
{%- endif -%}
{{- '\n' -}}
{%- for message in turns -%}
    {%- if message['role'] not in markers -%}
        {{- raise_exception('the paper format has no role ' + message['role'] + ' (system, user, assistant, tool)') -}}
    {%- endif -%}
    {%- set content = message['content'] or '' -%}
    {%- if message['role'] == 'assistant' -%}
        {%- if message['tool_calls'] -%}
            {%- set content = (content | trim + '\n' if content | trim else '') + calls(message['tool_calls']) -%}
        {%- endif -%}
        {{- 'Assistant: ' + content + (eos_token or '') + '\n' -}}
    {%- else -%}
        {{- markers[message['role']] + ' ' + content + '\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- 'Assistant:' -}}
{%- endif -%}
'''.strip()


def paper_chat_template(tokenizer: Any) -> str:
    """`PAPER_CHAT_TEMPLATE`, led by `bos_token` where the tokenizer puts it before every text (Llama's `<s>`):
    training encodes with it, while servers encode a templated prompt without adding special tokens."""
    bos = tokenizer.bos_token_id
    adds_bos = bos is not None and tokenizer("x", add_special_tokens=True)["input_ids"][:1] == [bos]
    return ("{{- bos_token -}}" if adds_bos else "") + PAPER_CHAT_TEMPLATE
