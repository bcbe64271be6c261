"""Chat templates are untrusted input: rendered with limits on output size and loop steps."""
import subprocess
import sys

import pytest
from jinja2.exceptions import TemplateError

from engine.model.chat_template import MAX_LOOP_STEPS, ChatTemplate, TemplateLimitError
from tinymodels import write_gguf

USER = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 10000000000 }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "{{ 'x'|center(10000000000) }}",
        "{{ 'x'.ljust(10000000000) }}",
        "{{ '%10000000000s' % 'x' }}",
        "{{ '{:>10000000000}'.format('x') }}",
        "{{ '%10000000000s'|format('x') }}",
        "{{ 10 ** 100000000 }}",
        "{{ (range(100000)|list)|join('x' * 900000) }}",
        "{{ ('x' * 900000)|replace('x', 'yy') }}",
        "{{ ('x' * 900000).replace('x', 'yy') }}",
        "{{ ('\n' * 900000)|indent('     ') }}",
        "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
    ],
)
def test_resource_exhaustion_is_refused_before_it_happens(source):
    with pytest.raises(TemplateLimitError):
        ChatTemplate(source).render(USER)


def test_loop_steps_count_across_loops():
    ok = "{%% for i in range(%d) %%}{%% endfor %%}" % (MAX_LOOP_STEPS // 2)
    assert ChatTemplate(ok + ok).render(USER) == ""
    with pytest.raises(TemplateLimitError, match="steps"):
        ChatTemplate(ok + ok + "{% for m in messages %}{% endfor %}").render(USER)


@pytest.mark.parametrize(
    "source",
    ["{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "{% for %}", "{{ messages[5]['content'] }}",
     "{{ raise_exception('no system role') }}", "{{ ''.__class__.__mro__ }}", "{{ range(10000000) }}"],
)
def test_any_failure_is_a_template_error(source):
    with pytest.raises(TemplateError):
        ChatTemplate(source).render(USER)


def test_break_and_continue_work_and_ordinary_templates_render():
    source = (
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.role ~ ':' ~ m.content }}{% endfor %}"
        "{% for i in range(4) %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}"
        "{{ 'a,b'.replace(',', ';') }}|{{ ['a', 'b']|join(', ') }}|{{ '{} {}'.format(1, 2) }}|{{ 'x' * 3 }}"
    )
    assert ChatTemplate(source).render(USER) == "user:hi023a;b|a, b|1 2|xxx"


def _classify(model, tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("A short note.")
    return subprocess.run([sys.executable, "-m", "engine.cli", "classify", "-q", "Is it short?", "--model", str(model),
                           str(doc)], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "template, problem",
    [("{{ 'x' * 10000000000 }}", "10,000,000,000 characters"),
     ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "steps"),
     ("{% for m in messages %}", "Unexpected end of template")],
)
def test_a_hostile_gguf_template_exits_2_with_one_line(tmp_path, template, problem):
    path, _ = write_gguf(tmp_path / "hostile.gguf", "llama", quant="F32", chat_template=template)
    done = _classify(path, tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert "hostile.gguf" in line and "chat template" in line and problem in line


def test_a_bos_id_outside_the_vocabulary_exits_2_with_one_line(tmp_path):
    path, _ = write_gguf(tmp_path / "badbos.gguf", "llama", quant="F32", bos_token_id=10**6)
    done = _classify(path, tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "badbos.gguf" in line and "tokenizer.ggml.bos_token_id is 1000000, outside the" in line
